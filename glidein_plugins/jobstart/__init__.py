"""Job start: the wrapper's plan, the container command, HTCondor-native knobs, the setup state."""
