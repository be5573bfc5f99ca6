"""Partner folder sync: authorised partners' training folders become certification folders."""
