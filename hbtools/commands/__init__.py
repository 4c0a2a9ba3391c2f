"""One module per `hbtool` verb; each only parses options and calls into the rooms."""
