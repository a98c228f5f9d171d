"""What glidein_plugins speaks with: GlideinWMS and HTCondor formats."""
