"""Road networks: a city's drivable roads as a directed graph with travel times, and the
pickup ETAs routed over it (issue #15). Pure: built from plain arrays (the OpenStreetMap
reader is an adapter, ``dispatch.adapters.osm``)."""
