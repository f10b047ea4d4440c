"""IT staff's view of the bridge: nodes, live meetings' links, offline terminals, alerts."""
