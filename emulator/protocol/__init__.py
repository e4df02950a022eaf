"""The NBWSS protocol without I/O: message builders, the codec, notification batching."""
