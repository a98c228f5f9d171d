"""HTCondor's side: ClassAd values, config knobs, job and machine ads, reserved names."""
