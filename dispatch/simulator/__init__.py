"""The load simulator: a simulated city of moving drivers and requesting riders."""
