"""Operations on a whole database: doctor, repair, maintenance, backup, restore, salvage."""
