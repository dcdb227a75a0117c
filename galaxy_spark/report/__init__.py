"""Every plot and the HTML report, fed a finished evaluation."""
