"""Deploying a trained run: NIR export with the changes a chip needs."""
