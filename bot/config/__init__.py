"""Configuration: the settings object (environment) and the SOP playbooks (YAML)."""
