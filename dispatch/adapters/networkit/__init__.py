"""The networkit adapter: fastest paths over the road graph with networkit's compiled
Dijkstra searches (``dispatch.roads.paths.ShortestPaths``)."""
