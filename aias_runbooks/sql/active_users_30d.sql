-- Playbook, Check active users: profiles created in the last 30 days.
SELECT count(*) AS new_profiles_30d FROM public.profiles WHERE created_at > now() - interval '30 days'
