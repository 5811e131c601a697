"""Background jobs: lease reaping, delayed promotion, retention sweeping and push delivery."""
