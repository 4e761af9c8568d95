"""Discharge logistics (issue 19): vendor selection, the offer cascade, its timers and the desk orders reach."""
