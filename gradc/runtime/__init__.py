"""Loading and running generated programs: the on-disk module cache and the Program object."""
