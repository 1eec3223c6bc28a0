"""Collections and documents: screens 3, 4, 5 and 7."""
