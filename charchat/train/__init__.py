"""Everything that needs torch: the module, training, evaluation and calibration."""
