"""A user's own teams, outside the branchpoint package: what `--team userteams.pair:TEAM` names."""
