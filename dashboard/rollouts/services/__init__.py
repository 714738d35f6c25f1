"""Fleet rollouts: pinning a fleet's request, the scheduler, and a tech lead's actions."""
