"""Device and home-monitoring feeds: bronze device records → silver `device_reading` → derived tables."""
