"""`make bench`: every function's figures against its physical limit, measured side by side in one run."""
