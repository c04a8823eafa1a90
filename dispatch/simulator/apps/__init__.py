"""The simulated city as a population of app clients of a running deployment
(``dispatch simulate --api URL``): driver apps and rider apps talking to its public API in
real time, as the apps of a real city would (docs/SIMULATION.md, "Against a deployment")."""
