from django.db import models


class Customer(models.Model):
    name = models.CharField(max_length=200)
    email = models.EmailField()
    company = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return self.name


class Invoice(models.Model):
    STATUS_CHOICES = [("draft", "Draft"), ("sent", "Sent"), ("paid", "Paid")]

    number = models.CharField(max_length=32, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    status = models.CharField(max_length=8, choices=STATUS_CHOICES, default="draft")

    def __str__(self) -> str:
        return self.number


class Ticket(models.Model):
    STATUS_CHOICES = [("open", "Open"), ("closed", "Closed")]

    subject = models.CharField(max_length=200)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="tickets")
    status = models.CharField(max_length=8, choices=STATUS_CHOICES, default="open")
    notes = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.subject
