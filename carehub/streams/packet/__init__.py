"""The transition-of-care packet (docs/packet.md): one FHIR document per discharge and recipient.

* ``sections``: the Composition's sections, modelled on C-CDA on FHIR Discharge Summary (LOINC codes).
* ``document``: the document Bundle and the message that carries it (pure).
* ``careplan``: the CarePlan whose activities are the follow-up Tasks, and its updates (pure).
* ``enrich``: medications, allergies, problems, pending results and documents from the
  hospital's FHIR server, within a time budget.
* ``step``: the route stage's packet step (enrich, consent gate, plan, record the CarePlan).
"""
