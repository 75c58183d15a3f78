"""What people run on top of the recognition core: the CLI, the API server + web page, video, results DB, outputs."""
