"""`streamline demo`: the pipeline end to end on the local cloud, with a conservation verdict."""
