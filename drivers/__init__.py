"""Device drivers. Each driver is one folder: config.py (pydantic), pure decoding modules, and
source.py (the only module that imports the device library). Drivers import only `gateway.core`;
the runtime finds them through `gateway.config.driver_registry`."""
