# Placeholder kept empty until its owner fills in the operations (issue 6 work in progress).
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("analyses", "0010_teams")]

    operations = []
