"""The factory configuration: the model, its YAML files and the factory XML."""
