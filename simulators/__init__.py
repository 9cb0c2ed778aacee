"""Simulated monitors: a fleet of elevators, escalators, boilers and pressure vessels publishing over MQTT."""
