-- Playbook, Check workflow usage: workflows created in the last 7 days.
SELECT count(*) AS new_workflows_7d FROM public.workflows WHERE created_at > now() - interval '7 days'
