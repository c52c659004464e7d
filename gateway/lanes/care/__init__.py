"""Care watch for residents living alone: activity signals, care rules, alarms."""
