"""Data preparation: corpus generators and the small static tables they need.

Generated corpora go under ``data/generated/`` (git-ignored), never into git.
"""
