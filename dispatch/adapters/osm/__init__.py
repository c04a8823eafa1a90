"""The OpenStreetMap adapter: reads a city's extract (``.osm.pbf``, parsed by pyrosm) into
the project's ``RoadGraph`` (``dispatch.roads.graph``)."""
