"""The console: `aias-runbooks serve` under /console/. The archive's runs, reports, incidents and runbooks to read
(pages.py), two runs compared (compare_page.py), reruns, schedules and four-eyes approvals (operate.py), for users
of a hashed-token file or a trusted proxy's header (auth.py, users.py); app.py holds the frame they share."""
