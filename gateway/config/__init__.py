"""Loading and validating the installer's TOML file."""

from gateway.config.loader import LoadedConfig, load_config, parse_config
from gateway.config.model import GatewayConfig

__all__ = ["GatewayConfig", "LoadedConfig", "load_config", "parse_config"]
