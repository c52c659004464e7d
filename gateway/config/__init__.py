"""Loading and validating the installer's TOML file."""

from gateway.config.loader import LoadedConfig, config_warnings, load_config, parse_config
from gateway.config.model import GatewayConfig

__all__ = ["GatewayConfig", "LoadedConfig", "config_warnings", "load_config", "parse_config"]
