"""Where settings come from: the user config, the environment, YAML reading limits, secrets."""
