"""carehub.core.uuids: the ids ``uuid.uuid5`` makes, for any name."""

from __future__ import annotations

import uuid

from carehub.core.uuids import Namespace
from carehub.mappings import ids


def test_every_id_is_the_uuid5_of_its_name() -> None:
    for raw in ("6f2b3c0e-9a57-4c1e-9d7a-2b1f0c3d4e5a", str(uuid.NAMESPACE_URL), str(uuid.uuid4())):
        namespace = Namespace(raw)
        names = ["", "a", "header|" + "k" * 40, "Zoë|患者|é", *(f"careplan|RGH|V{n}" for n in range(300))]
        for name in names:
            assert namespace.id(name) == str(uuid.uuid5(uuid.UUID(raw), name)), name
    assert Namespace(uuid.NAMESPACE_DNS).id("x") == str(uuid.uuid5(uuid.NAMESPACE_DNS, "x"))


def test_resource_ids_are_uuid5_of_type_and_key() -> None:
    assert ids.resource_id("Patient", "RGH", "MRN1") == str(uuid.uuid5(ids.NAMESPACE, "Patient|RGH|MRN1"))
