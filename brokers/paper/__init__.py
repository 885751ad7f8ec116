"""The in-process paper broker: the default, and the fake broker of the tests."""
