"""Cache backends behind one CacheBackend protocol."""
