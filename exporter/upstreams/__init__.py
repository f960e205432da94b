"""Upstream services: the Figma REST client, the MCP client, availability probes and the
FigmaSessionManager that serves Figma context through the session store's response cache.

Nothing here imports aiohttp's server side; clients (aiohttp.ClientSession, Redis) are passed in
and only `factory.open_figma_layer` creates and closes them.
"""
