"""The fault suite. A package (not just a folder) so the suite's processes, a
``package``-scoped fixture, stop as soon as its last scenario ran, not at session end."""
