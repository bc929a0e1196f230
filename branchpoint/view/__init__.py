"""The local web viewer (`branchpoint view`) and the self-contained HTML report (`branchpoint report`)."""
