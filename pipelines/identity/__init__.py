"""Identity resolution: one person across sources (master patient index) and the golden record."""
