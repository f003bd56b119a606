"""Everything specific to LivePerson's Chat Agent API: configuration, transport, session lifecycle, parsing.

This layer knows nothing of Dagster or of the warehouse; the embedded simulator lives in ``simulator`` and is
imported only by ``connect`` (the configuration layer), never by the client.
"""
