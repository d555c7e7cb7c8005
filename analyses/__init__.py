"""The domain app: projects and membership, datasets, analyses, ML tasks, sessions."""
