"""Lintel fleet service: every building in one place (README, "Fleet service").

Stateless ingest workers on MQTT 5 shared subscriptions write the gateways' schema-v1 messages into
PostgreSQL exactly once by (gateway_id, seq); operator tools and a server-rendered web page read
from it. fleet imports from gateway only the upstream schema's topics and the command signing code.
"""
