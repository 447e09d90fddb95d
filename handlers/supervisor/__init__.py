"""The supervisor: runs every agent in its own OS process and keeps it alive."""
