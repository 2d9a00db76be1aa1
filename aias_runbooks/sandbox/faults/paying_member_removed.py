"""The paying-member-removed fault: a member who pays for their workspace's Pro plan was removed from it (they
pay and see nothing); sandbox_scenario.removed_members names them and puts them back when the scenario ends."""

from __future__ import annotations

from .base import SqlFault

# A paying member removed from the workspace their subscription pays for (an admin's clean-up, a bad invitation
# flow): the first such member by email; the row is kept aside (outside the app's schemas) so UNDO_SQL puts it back.
PAYING_MEMBER_REMOVED_SQL = """
CREATE SCHEMA IF NOT EXISTS sandbox_scenario;
CREATE TABLE sandbox_scenario.removed_members AS
SELECT m.* FROM public.tenant_members m
JOIN public.subscription_tiers s ON s.user_id = m.user_id AND s.tenant_id = m.tenant_id
JOIN public.profiles p ON p.id = m.user_id
WHERE s.tier <> 'free' AND s.status = 'active' AND m.role = 'member'
ORDER BY p.email LIMIT 1;
DELETE FROM public.tenant_members m USING sandbox_scenario.removed_members r
WHERE m.tenant_id = r.tenant_id AND m.user_id = r.user_id;
"""
UNDO_SQL = """
DO $$
BEGIN
  IF to_regclass('sandbox_scenario.removed_members') IS NOT NULL THEN
    INSERT INTO public.tenant_members SELECT * FROM sandbox_scenario.removed_members ON CONFLICT DO NOTHING;
    DROP TABLE sandbox_scenario.removed_members;
  END IF;
END
$$;
"""

PAYING_MEMBER_REMOVED = SqlFault(PAYING_MEMBER_REMOVED_SQL, UNDO_SQL)
