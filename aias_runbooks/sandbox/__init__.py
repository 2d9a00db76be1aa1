"""The embedded AIAS Platform, arranged by what each part imitates, from the bottom up: processes.py (the sandbox's
background processes), platform/ (the platform as its users meet it: database/, api/, the worker), emulators/ (the
third parties: Stripe, the hosted services), traffic/ (its everyday users and reads), faults/ (one module per
fault, make/reset), scenarios.py (the named scenarios, as data) and control.py (`sandbox up|down|status`)."""
