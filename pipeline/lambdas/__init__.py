"""AWS Lambda entry points: parse the event, call the library, return JSON. No logic lives here."""
