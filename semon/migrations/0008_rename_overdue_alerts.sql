-- Before the compliance rules (docs/compliance.md) the only compliance alert was 'inspection_overdue'; the compliance scan now raises one per
-- check ('overdue:<check>') and resolves only those. Renaming the open ones keeps their history and count and
-- stops the scan from opening a second alert (and notifying twice) for the same overdue inspection.
UPDATE alerts SET kind = 'overdue:periodic_inspection'
 WHERE kind = 'inspection_overdue' AND state <> 'resolved';
