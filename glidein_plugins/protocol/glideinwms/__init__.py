"""GlideinWMS's side: glidein_config, condor_vars.lst, the result XML."""
