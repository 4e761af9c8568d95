"""The care-coordination scorecard: measures defined as data (config/measures), computed from the journal."""
